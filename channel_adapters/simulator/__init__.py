"""A local stand-in for the SMS gateway, the call centre and the customers."""

from channel_adapters.simulator.core import CustomerModel, Simulator, SimulatedOutcome

__all__ = ["CustomerModel", "SimulatedOutcome", "Simulator"]
