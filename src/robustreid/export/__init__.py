"""Export: a trained model's eval graph to ONNX (raw images in, embeddings out), checked for parity with
onnxruntime after every export. Needs the ``onnx`` extra (onnx, onnxruntime; onnxscript for the dynamo exporter).

Public API::

    from robustreid.export import export_onnx
    res = export_onnx("runs/bot", "bot.onnx", fp16=True)   # raises ExportError if a check fails
    print("\\n".join(res.lines()))
"""

from .identity import model_identity, short_id
from .onnx_export import EXPORTERS, FORMAT, INPUT_DTYPES, ExportError, ExportResult, export_onnx, read_metadata, session
from .parity import ParityReport, check_parity, parity_images

__all__ = ["EXPORTERS", "FORMAT", "INPUT_DTYPES", "ExportError", "ExportResult", "ParityReport", "check_parity",
           "export_onnx", "model_identity", "parity_images", "read_metadata", "session", "short_id"]
