"""What generated code calls: query building, the read path, the context and flush."""
