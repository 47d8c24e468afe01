"""Azure Storage (Azurite) as every part of the host uses it: texts over table rows and blobs, the
hub lease, queues, and the storage API version sent."""
