namespace Orchestrator.Cli.Tests;

public class DataDirectoryTests
{
    private static readonly Func<string, string?> Everything = Env.Of(
        ("ORCHESTRATOR_DATA", "/env/data"),
        ("XDG_DATA_HOME", "/xdg"),
        ("HOME", "/home/ann"));

    [Fact]
    public void The_data_flag_wins_over_every_environment_variable() =>
        Assert.Equal("/flag/data", DataDirectory.Resolve("/flag/data", Everything));

    [Fact]
    public void ORCHESTRATOR_DATA_wins_over_the_XDG_and_home_defaults() =>
        Assert.Equal("/env/data", DataDirectory.Resolve(null, Everything));

    [Fact]
    public void XDG_DATA_HOME_is_used_when_neither_flag_nor_ORCHESTRATOR_DATA_is_set() =>
        Assert.Equal("/xdg/orchestrator", DataDirectory.Resolve(null, Env.Of(("XDG_DATA_HOME", "/xdg"), ("HOME", "/home/ann"))));

    [Fact]
    public void A_relative_XDG_DATA_HOME_is_ignored_as_the_XDG_spec_says() =>
        Assert.Equal("/home/ann/.local/share/orchestrator", DataDirectory.Resolve(null, Env.Of(("XDG_DATA_HOME", "rel/xdg"), ("HOME", "/home/ann"))));

    [Fact]
    public void The_home_directory_default_is_the_last_resort() =>
        Assert.Equal("/home/ann/.local/share/orchestrator", DataDirectory.Resolve(null, Env.Of(("HOME", "/home/ann"))));

    [Fact]
    public void Empty_values_count_as_unset() =>
        Assert.Equal("/home/ann/.local/share/orchestrator",
            DataDirectory.Resolve(" ", Env.Of(("ORCHESTRATOR_DATA", ""), ("XDG_DATA_HOME", ""), ("HOME", "/home/ann"))));

    [Fact]
    public void A_relative_flag_becomes_a_full_path() =>
        Assert.Equal(Path.GetFullPath("some/dir"), DataDirectory.Resolve("some/dir", Everything));
}
