"""Vector store engines behind `retrieval.store.open_client`: each one answers the subset
of `QdrantClient`'s methods the product calls, with qdrant-client's `models` types."""
