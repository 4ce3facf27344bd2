"""The Analyze RPC shell: the gRPC servicer and server of analysis_svc."""
