"""The Lambda side, shared by ``testing/`` (the simulator) and ``runner/`` (the local
event source mappings): the partial batch response as the event source mapping reads
it, the context object a handler gets, and calling a function as the runtime does."""
