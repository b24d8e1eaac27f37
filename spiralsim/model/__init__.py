"""The model layer: the system as SimPy components (traffic, client, balancer, pods and
their pools, the database, the autoscaler), built and run by `world.World`.

Imports only the scenario's config models, the metrics recorder and the vocabulary.
"""
