"""The team tracking server: PostgreSQL + an MLflow tracking server, started and stopped by the project itself.

``python -m no2hotspots server server.action=start|stop|status|run|migrate`` (``run(cfg)`` in ``run.py``);
``postgres.py`` runs the database cluster, ``mlflow_server.py`` the tracking server, ``migrate.py`` copies a SQLite
store into a server.
"""
