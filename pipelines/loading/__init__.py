"""Readers for real checkpoint files: one module per component, one state-dict check, one file-kind detection.

Layout:

* :mod:`.files` - reading weight files safely (safetensors; pickles only weights-only), :func:`.files.read_header`
  (names, shapes, dtypes and metadata without tensor data), :func:`.files.read_state_dict`, writing.
* :mod:`.detect` - what a file IS, from its header: :func:`.detect.check_file` refuses a file given to the wrong
  loader, saying what it is and which loader takes it, before any tensor is read.
* :mod:`.state_dict` - the one check (:func:`.state_dict.check_state_dict`), the one error
  (:class:`.state_dict.StateDictError`, naming the file and full keys) and the one optional-key rule; keys of
  harmless families (EMA, LoRA leftovers, schedule buffers, ...) are dropped with a warning listing them.
* one module per component, builders included: :mod:`.unet`, :mod:`.motion`, :mod:`.vae`, :mod:`.clip`, and
  :mod:`.checkpoint` for whole single-file checkpoints; key-name maps live beside them in ``*_keys.py``.
* configs go to and from JSON through :mod:`..models.configs` only.

Adding a component loader (ControlNet, upscaler, RIFE, ...) as ``loading/<component>.py``:

1. give its file kind a constant, a detection rule (key names / shapes), a description and the loader node's
   display name in :mod:`.detect`;
2. ``load_<component>(path)`` calls ``detect.check_file(path, ACCEPTED, LOADER_NAME)`` first, then
   :func:`.files.read_state_dict`, builds the model on the meta device and passes the state dict through
   ``check_state_dict(model_shapes(model), sd, Path(path).name, optional=...)`` and ``assign_weights``;
3. its loader node's ``VALIDATE_INPUTS`` calls the same ``detect.check_file`` (see ``nodes/loaders.py``), so a
   wrong file is refused when the graph is validated, before anything runs.
"""
