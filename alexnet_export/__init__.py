"""alexnet-export: BVLC AlexNet weights to SavedModel, TFLite and ONNX, with proof of parity."""

__version__ = "0.1.0"
