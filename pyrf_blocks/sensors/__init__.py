"""
Sensor pipelines: what happens to each message of a topic, from an MQTT
broker to a store.

Stages, in order (each its own module, each a section of a pipeline file):
active period (:mod:`.period`), filters (:mod:`.filters`), transformations
(:mod:`.transforms`), accumulation policies (:mod:`.policies`), buffering
(:mod:`.buffering`).  :mod:`.pipeline` composes them for one topic;
:mod:`.spec` reads a pipeline file; :mod:`.serve` runs a directory of them
against a broker and a store.
"""
