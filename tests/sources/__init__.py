"""The event sources: each descriptor, the record views, the sample events AWS publishes."""
