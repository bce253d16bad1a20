namespace Orchestrator.Cli.Tests;

public class NodeConnectionResolverTests
{
    private static async Task<TempDir> DataWithNode(string url = "http://127.0.0.1:7480", string key = "file-key")
    {
        var dir = new TempDir();
        await NodeDiscoveryFiles.WriteAsync(dir.Path, url, 4321, key);
        return dir;
    }

    [Fact]
    public async Task Flags_win_over_the_environment_and_the_files()
    {
        using var data = await DataWithNode();
        var env = Env.Of(("ORCHESTRATOR_URL", "http://env:1"), ("ORCHESTRATOR_API_KEY", "env-key"));

        var c = NodeConnectionResolver.Resolve("http://flag:2", "flag-key", data.Path, env);

        Assert.Equal(new Uri("http://flag:2/"), c.Url);
        Assert.Equal("flag-key", c.ApiKey);
        Assert.Equal((ConnectionSource.Flag, ConnectionSource.Flag), (c.UrlSource, c.ApiKeySource));
    }

    [Fact]
    public async Task The_environment_wins_over_the_files()
    {
        using var data = await DataWithNode();
        var env = Env.Of(("ORCHESTRATOR_URL", "http://env:1"), ("ORCHESTRATOR_API_KEY", "env-key"), ("ORCHESTRATOR_DATA", data.Path));

        var c = NodeConnectionResolver.Resolve(null, null, null, env);

        Assert.Equal(new Uri("http://env:1/"), c.Url);
        Assert.Equal("env-key", c.ApiKey);
        Assert.Equal((ConnectionSource.Environment, ConnectionSource.Environment), (c.UrlSource, c.ApiKeySource));
    }

    [Fact]
    public async Task The_files_of_the_data_directory_are_used_when_nothing_else_is_given()
    {
        using var data = await DataWithNode();

        var c = NodeConnectionResolver.Resolve(null, null, null, Env.Of(("ORCHESTRATOR_DATA", data.Path)));

        Assert.Equal(new Uri("http://127.0.0.1:7480/"), c.Url);
        Assert.Equal("file-key", c.ApiKey);
        Assert.Equal((ConnectionSource.DataDirectory, ConnectionSource.DataDirectory), (c.UrlSource, c.ApiKeySource));
        Assert.Equal(4321, c.DiscoveredPid);
    }

    [Fact]
    public async Task The_data_flag_picks_the_directory_to_read()
    {
        using var data = await DataWithNode("http://127.0.0.1:9999");

        var c = NodeConnectionResolver.Resolve(null, null, data.Path, Env.Of(("ORCHESTRATOR_DATA", "/does/not/exist")));

        Assert.Equal(new Uri("http://127.0.0.1:9999/"), c.Url);
    }

    [Fact]
    public async Task A_key_flag_combines_with_the_url_of_the_files()
    {
        using var data = await DataWithNode();

        var c = NodeConnectionResolver.Resolve(null, "flag-key", data.Path, Env.Of());

        Assert.Equal((ConnectionSource.DataDirectory, "flag-key"), (c.UrlSource, c.ApiKey));
    }

    [Fact]
    public async Task The_admin_key_of_the_files_is_never_sent_to_another_url()
    {
        using var data = await DataWithNode("http://127.0.0.1:7480");

        var c = NodeConnectionResolver.Resolve("http://elsewhere.example:7480", null, data.Path, Env.Of());

        Assert.Null(c.ApiKey);
        Assert.Equal(ConnectionSource.None, c.ApiKeySource);
    }

    [Fact]
    public async Task The_admin_key_of_the_files_goes_with_an_explicit_url_naming_the_same_node()
    {
        using var data = await DataWithNode("http://127.0.0.1:7480");

        var c = NodeConnectionResolver.Resolve("http://127.0.0.1:7480/", null, data.Path, Env.Of());

        Assert.Equal("file-key", c.ApiKey);
    }

    [Fact]
    public void No_node_anywhere_says_how_to_start_or_name_one()
    {
        using var empty = new TempDir();

        var e = Assert.Throws<CliException>(() => NodeConnectionResolver.Resolve(null, null, empty.Path, Env.Of()));

        Assert.StartsWith(NodeConnectionResolver.NoNodeFound, e.Message);
        Assert.Contains("./orchestrator node", e.Message);
        Assert.Contains("ORCHESTRATOR_URL/ORCHESTRATOR_API_KEY", e.Message);
    }

    [Fact]
    public void A_url_from_the_environment_that_is_not_http_is_refused_by_name()
    {
        var e = Assert.Throws<CliException>(() => NodeConnectionResolver.Resolve(null, null, null, Env.Of(("ORCHESTRATOR_URL", "ftp://x"))));
        Assert.Contains("ORCHESTRATOR_URL", e.Message);
    }

    [Theory]
    [InlineData("http://h:1", "http://h:1/")]
    [InlineData("https://h/prefix", "https://h/prefix/")]
    [InlineData("http://h/prefix/", "http://h/prefix/")]
    public void Urls_get_a_trailing_slash_so_api_paths_keep_their_prefix(string text, string expected) =>
        Assert.Equal(new Uri(expected), NodeConnectionResolver.ParseUrl(text));

    [Fact]
    public void The_connection_text_never_contains_the_key()
    {
        var c = NodeConnectionResolver.Resolve("http://h:1", "sekrit-key", null, Env.Of());
        Assert.DoesNotContain("sekrit", c.ToString());
        Assert.DoesNotContain("sekrit", new ClientArgs("http://h:1", "sekrit-key", null, OutputFormat.Table).ToString());
    }
}
