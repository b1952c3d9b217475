"""Video quality metrics: seams, flicker, warp error, PSNR, SSIM."""
