"""The actor-plumbing fixtures (worker_fixtures.py) for every test of this folder, so that no test
module imports them by name (an import pyflakes would see as unused, then shadowed)."""
from worker_fixtures import handlers as handlers
from worker_fixtures import own_redis_url as own_redis_url
from worker_fixtures import plumbing as plumbing
from worker_fixtures import redis_cleanup as redis_cleanup
from worker_fixtures import worker_settings as worker_settings
