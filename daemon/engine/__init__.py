"""The engine: the one way in (submission and admission), the executor of an execution's
task graph, its lifecycle (recover, restart, replay, pause), the triggers' supervisor and
the typed events every state change publishes."""
