"""The Durable Task gRPC protocol (`TaskHubSidecarService`) on the local host's engine: standalone
`durabletask` workers and clients, offline and durable (see docs/sidecar.md)."""
