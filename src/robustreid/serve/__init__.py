"""Search: embed a gallery into an index that remembers its model, and serve it over HTTP (FastAPI + uvicorn)
with a page to drop a crop and see the ranked gallery. Needs the ``faiss`` and ``serve`` extras.

Public API::

    from robustreid.serve import open_embedder, images_from_folder, build_index, Gallery, create_app
    emb = open_embedder("runs/bot")                      # or open_embedder(onnx="bot.onnx")
    index = build_index(emb, images_from_folder("crops/"), kind="flat")
    index.save("gallery.index")
    app = create_app(Gallery(index, emb, "gallery.index"))
"""

from .batcher import BatchQueue
from .embedder import Embedder, OnnxEmbedder, TorchEmbedder, check_same_model, open_embedder
from .gallery import (Gallery, ImageList, add_images, build_index, describe, embed_files, embedder_for_index,
                      images_from_dataset, images_from_folder)
from .uploads import UploadError, UploadLimits

__all__ = ["BatchQueue", "Embedder", "Gallery", "ImageList", "OnnxEmbedder", "TorchEmbedder", "UploadError",
           "UploadLimits", "add_images", "build_index", "check_same_model", "create_app", "describe", "embed_files",
           "embedder_for_index", "images_from_dataset", "images_from_folder", "open_embedder"]


def __getattr__(name):  # the app pulls in FastAPI: only on use
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(name)
