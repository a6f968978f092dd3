"""The built-in tasks, registered through the ``register_tasks`` hook like a plugin's
(``tlhub.plugins.builtins.tasks``): ``classification``, ``multilabel``, ``regression``. ``tlhub.task`` is the
interface."""
