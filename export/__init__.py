"""edgecls.export: TorchScript / ONNX / OpenVINO export with parity checks (not built yet)."""
