"""gunicorn hooks: release the DBOS client when a web worker exits."""


def worker_exit(server, worker):
    from closeout.closures import dispatch

    dispatch.reset_client()
