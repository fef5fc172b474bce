"""The "Spot the quantized" blind test: rounds and votes (`game`), the SQLite vote store and the app's data folder
(`store`), and the opt-in Hub dataset mirror (`mirror`). The tab itself is `dit_demo.app.page.blind_tab`."""
