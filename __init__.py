"""FrameFold: a video-diffusion node pack for ComfyUI that also runs on its own.

ComfyUI imports this folder by file path and reads the mappings below. Importing is cheap: it
collects node classes only (no model is built, no kernel compiled, triton is not imported).
"""

__version__ = "0.1.0"
WEB_DIRECTORY = "./web"

if __package__:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
else:
    # Imported as a plain file, not as a package (pytest does this when the checkout's folder name is not a
    # valid module name): there are no nodes to offer then.
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY", "__version__"]
