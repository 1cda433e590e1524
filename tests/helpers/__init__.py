"""Helpers shared by the tests (fixtures live in conftest.py): topics and databases
(`common`), private servers for fault tests (`disposable`), and per service the
code that runs it in-process or as a process (`sink`, `cache`, `gap`, `collector`)
with the data it needs (`sinkdata`)."""
