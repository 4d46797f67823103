"""The IR-Net model zoo (`larq_irnet.zoo`): the paper's networks in larq-zoo style."""
