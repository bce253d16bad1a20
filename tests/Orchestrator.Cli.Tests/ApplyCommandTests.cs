// `apply -f FILE`: binding, the request it sends, the plan table and summary, and a stopped apply.
using System.Net;
using System.Text.Json;

namespace Orchestrator.Cli.Tests;

public sealed class ApplyCommandTests : IDisposable
{
    private const string FileText = "vms {\n  web-1 { vcpus = 1, memory-mib = 128, image = demo }\n}\n";

    private const string DryRunPlan = """
        {"dryRun":true,"steps":[
          {"action":"create","vm":"web-1","detail":"1 vCPU, 128 MiB, image demo"},
          {"action":"update","vm":"web-2","detail":"cpu-shares 1024 → 2048"},
          {"action":"replace","vm":"web-3","detail":"vcpus 1 → 2 (delete, then create)"},
          {"action":"delete","vm":"web-4","detail":"not in the file"},
          {"action":"unchanged","vm":"web-5","detail":""}],
         "changed":4}
        """;

    private readonly TempDir _dir = new();
    private readonly string _file;

    public ApplyCommandTests()
    {
        _file = _dir.Sub("vms.conf");
        File.WriteAllText(_file, FileText);
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Apply_binds_the_file_as_a_full_path_and_its_flags()
    {
        var a = RecordingActions.Bind<ApplyArgs>("apply", "-f", _file, "--dry-run", "--prune", "-o", "json", "--url", "http://h:1");

        Assert.Equal(new ApplyArgs(new ClientArgs("http://h:1", null, null, OutputFormat.Json), Path.GetFullPath(_file), true, true), a);
    }

    [Fact]
    public void Apply_defaults_to_changing_things_without_pruning_and_a_table()
    {
        var a = RecordingActions.Bind<ApplyArgs>("apply", "--file", _file);

        Assert.Equal((false, false, OutputFormat.Table), (a.DryRun, a.Prune, a.Client.Output));
    }

    [Theory]
    [InlineData("apply")]
    [InlineData("apply", "-f", "/no/such/apply.conf")]
    public async Task Apply_without_a_readable_file_is_a_usage_error(params string[] args)
    {
        var http = new ScriptedHandler();
        var run = await CliRun.Of(http, null, args);

        Assert.Equal(2, run.ExitCode);
        Assert.StartsWith("error: ", run.Error.ToString());
        Assert.Empty(http.Requests);
    }

    [Fact]
    public async Task A_dry_run_sends_the_file_as_it_is_and_prints_the_plan_and_what_it_would_do()
    {
        var http = new ScriptedHandler().On("POST", "/v1/apply", HttpStatusCode.OK, DryRunPlan);

        var run = await CliRun.Of(http, null, "apply", "-f", _file, "--dry-run", "--prune");

        Assert.Equal(0, run.ExitCode);
        var request = Assert.Single(http.Requests);
        Assert.Equal((HttpMethod.Post, FileText, "Bearer sekrit-key"), (request.Method, request.Body, request.Authorization));
        Assert.Equal(("?dryRun=true&prune=true", "application/hocon"), (http.Sent[0].Uri.Query, http.Sent[0].MediaType));
        var lines = run.Out.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Matches(@"^ACTION\s+VM\s+DETAIL$", lines[0]);
        Assert.Matches(@"^create\s+web-1\s+1 vCPU, 128 MiB, image demo$", lines[1]);
        Assert.Matches(@"^replace\s+web-3\s+vcpus 1 → 2 \(delete, then create\)$", lines[3]);
        Assert.Matches(@"^unchanged\s+web-5$", lines[5]);
        Assert.Equal("1 to create, 1 to update, 1 to replace, 1 to delete, 1 unchanged", lines[^1]);
    }

    [Fact]
    public async Task An_apply_says_what_it_did()
    {
        var done = DryRunPlan.Replace("\"dryRun\":true", "\"dryRun\":false", StringComparison.Ordinal);
        var http = new ScriptedHandler().On("POST", "/v1/apply", HttpStatusCode.OK, done);

        var run = await CliRun.Of(http, null, "apply", "-f", _file);

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("?dryRun=false&prune=false", http.Sent[0].Uri.Query);
        Assert.EndsWith("applied: 1 created, 1 updated, 1 replaced, 1 deleted, 1 unchanged\n", run.Out.ToString().Replace("\r\n", "\n"));
    }

    [Fact]
    public async Task Json_output_is_the_server_s_answer()
    {
        var http = new ScriptedHandler().On("POST", "/v1/apply", HttpStatusCode.OK, DryRunPlan);

        var run = await CliRun.Of(http, null, "apply", "-f", _file, "--dry-run", "-o", "json");

        using var printed = JsonDocument.Parse(run.Out.ToString());
        Assert.Equal(4, printed.RootElement.GetProperty("changed").GetInt32());
        Assert.Equal(5, printed.RootElement.GetProperty("steps").GetArrayLength());
    }

    [Fact]
    public async Task A_stopped_apply_prints_the_failed_step_and_the_field_and_exits_1()
    {
        var http = new ScriptedHandler().On("POST", "/v1/apply", HttpStatusCode.Conflict, """
            {"title":"apply stopped","status":409,
             "detail":"step 2 of 3, create web-2, failed: host h1 has 0 millicores left to reserve; done before it: create web-1",
             "errors":{"vms.web-2.cpu-reservation":["host h1 has 0 millicores left to reserve"]},
             "failedStep":{"action":"create","vm":"web-2","detail":"1 vCPU"},"done":[{"action":"create","vm":"web-1","detail":"1 vCPU"}],"changed":1}
            """);

        var run = await CliRun.Of(http, null, "apply", "-f", _file);

        Assert.Equal(1, run.ExitCode);
        Assert.Equal("", run.Out.ToString());
        var lines = run.Error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("error: apply stopped: step 2 of 3, create web-2, failed", lines[0]);
        Assert.EndsWith("done before it: create web-1", lines[0].TrimEnd('\r'));
        Assert.Equal("  vms.web-2.cpu-reservation: host h1 has 0 millicores left to reserve", lines[1].TrimEnd('\r'));
    }
}
