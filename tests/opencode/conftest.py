from tests.opencode.fixtures import opencode_server, scripted_model  # noqa: F401
