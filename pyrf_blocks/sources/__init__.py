"""
Record sources from outside the instrument world: MQTT (:mod:`.mqtt`).
"""
