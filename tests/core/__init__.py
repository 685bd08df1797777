"""The engine: processing, order, failure, time, limits, backends, faults in the user's code."""
