"""What a trained model does and why: evaluation on held-out photos (`evaluation`), Grad-CAM, the feature map and
the weights' change (`explain`), classifying photos (`predict`), TorchScript and ONNX files (`export`), and the
Plotly figures the app, notebooks and tests share (`charts`, which needs no torch)."""
