"""Teacher stage: an LLM labels unlabeled text → silver records grounded to character offsets.

Pipeline order of the modules: ``prompts`` (TaskSpec → chat messages, versioned templates) and ``demos``
(k-shot selection) → ``backends`` (openai / openai-compatible / azure / hf / replay; raw responses only) →
``cache`` (SQLite) → ``parse`` (text → items) → ``ground`` (items → spans with alignment status) →
``label`` (the resumable async job) and ``cost``; ``standin`` is a loopback OpenAI-compatible test server.
Entry point: :func:`ade_distill.teacher.label.label_examples`.
"""
