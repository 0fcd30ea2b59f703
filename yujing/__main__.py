from yujing.cli import app

app(prog_name="yujing")
