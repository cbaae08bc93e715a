"""Containment: graded switches the privacy officer throws during an incident."""
