"""Breach notification: notices patients can trust, and reports regulators need.

From an incident's scope (the document of ``carevault.incidents``) this package
writes one notice per affected patient in their language, sends it by email, SMS or
a printed letter as a resumable job, answers ``/verify`` for the codes it issued,
assesses the risk and pre-fills the regulators' reports.
"""
