"""Reading benchmark data safely: annotation files with errors that name the file, record and field,
regular files only, image paths confined to the data root and a memory-bounded restricted unpickler
(`files`); the typed fields loaders read through (`validate`); size-limited images (`images`); and where the embedded synthetic world lives, generated on first use and verified
(`embedded`). Task loaders and the runner use it; it imports only `molmo_eval.core` (and the
reference model's world generator, which it calls to write the embedded world).
"""
