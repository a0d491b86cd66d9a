"""gunicorn's settings for Premier. gunicorn reads ./gunicorn.conf.py from the directory it starts in: the
Dockerfile, docker-compose.yml and bench/api_load.py start it in the project root. Arguments on the command line
override these.

- gthread, 4 workers x 4 threads: a request waiting on Stripe (up to its 10 s budget) holds a thread, not a
  process, so the other threads keep answering (docs/operations.md, "Faults").
- worker_connections = 2 x threads. A keep-alive connection stays with the worker that accepted it, and without
  a limit one worker accepted most of them: 16 connections from a load balancer or a load generator were seen
  all on one worker (one core busy, the other idle, its 4 threads queueing the other 12), or 15 + 1. With the
  limit a worker accepts no more than 8 connections and, once it holds more than 4 idle ones, closes each after
  its answer, so the client reconnects to another worker. At 16 clients this moved p99/p50 of member requests
  from 1.3-5.4 to 1.8-3.0 (docs/benchmarks.md). worker_connections = threads instead (no keep-alive at all) cost
  a third of single-client throughput (a new connection per request).
"""

wsgi_app = "config.wsgi:application"
bind = ["0.0.0.0:8000"]
worker_class = "gthread"
workers = 4
threads = 4
worker_connections = 2 * threads
timeout = 60
