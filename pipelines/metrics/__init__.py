"""Video quality metrics: seams, flicker, warp error, PSNR, SSIM (OpenCV imported lazily)."""

from .quality import flicker, frame_differences, psnr, seam_ratio, seam_ratios, ssim, warp_error, warp_errors

__all__ = ["flicker", "frame_differences", "psnr", "seam_ratio", "seam_ratios", "ssim", "warp_error", "warp_errors"]
