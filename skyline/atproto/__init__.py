"""ATProto plumbing: syntax of identifiers, the outbound HTTP client, identity, XRPC and PDS calls, repositories."""
