"""Host Microsoft Agent Framework agents in Azure Durable Functions entities."""
