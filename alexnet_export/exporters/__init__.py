"""One module per export format: savedmodel, onnx, tflite."""
