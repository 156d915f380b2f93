"""The review loop: a local queue, a Label Studio project, and the answers coming back.

``queue`` keeps the state in ``<workspace>/review/queue.sqlite`` (what was chosen, what was sent,
what came back); ``labelstudio`` is the only module that talks to Label Studio; ``push``,
``pull`` and ``simulate`` join the two; ``server`` runs a local Label Studio.
"""
