"""FrameFold: a video-diffusion node pack for ComfyUI that also runs on its own.

ComfyUI imports this folder by file path and reads the mappings below. Importing is cheap: it
collects node classes only (no model is built, no kernel compiled, triton is not imported).
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"
__version__ = "0.1.0"
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY", "__version__"]
