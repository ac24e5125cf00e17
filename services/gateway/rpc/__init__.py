"""The Open Inference Protocol over gRPC, as Triton speaks it: the server (`server`), the
service that calls the data plane (`service`), and its messages (`codec`)."""
