"""Adapters at the edges: files, brokers, feeds and stores. The core never imports them."""
