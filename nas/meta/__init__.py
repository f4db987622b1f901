"""Meta-learning: what earlier searches teach a new one.

    features.py   a task's features (computed from its data, or declared in config); task.json
    knowledge.py  finished runs and benchmark tables read into one table of
                  (task, architecture, normalised score), with the tasks' features
    model.py      the meta-model: related tasks' scores, weighted by similarity and
                  shrunk towards a ridge predictor of score from (architecture, task
                  features) whose form is cross-validated on the knowledge
    warm.py       warm start of a run's strategy from a meta-model

Nothing here imports torch at module level: only computing the features of a
data task does (in the task-features step).
"""
