"""Files users send the model: images, PDFs and text files.

- ``inspect.py``: what a file is, decided by its content (never its name), and refused with
  a clear error when it is not something we send, too big, a decompression bomb or an
  encrypted PDF; images are scaled down to the long edge the API recommends.
- ``service.py``: upload (streamed to the storage), the owner's files, removal, the chat's
  files deleted with it, and the check a message's attachments pass in the turn service.
- ``blocks.py``: the content blocks a message stores for its files, and what a provider
  sends in their place (base64 images and PDFs, text documents).
"""
