"""Edge's defences at the HTTP/1.1 wire: parser, framing, proxies, limits and timeouts."""
