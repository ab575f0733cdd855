"""Partners: stations, schedules, queues and availability."""
