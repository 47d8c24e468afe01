"""The app's triggers the local host serves (HTTP, timers, queues) and the output bindings written
after a function returns."""
