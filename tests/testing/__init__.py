"""asyncbatch.testing: the context, the events, the simulator, the pytest plugin, the strategies."""
