// Client commands against a scripted HTTP handler (no server): requests sent, output, exit codes.
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace Orchestrator.Cli.Tests;

public class ClientCommandTests
{
    private const string Problem404 = """{"type":"about:blank","title":"Not Found","status":404,"detail":"no VM named 'web1'"}""";

    [Fact]
    public async Task Vm_create_with_wait_posts_the_spec_polls_until_ready_and_reports_the_boot_time()
    {
        var http = new ScriptedHandler()
            .On("POST", "/v1/vms", HttpStatusCode.Created, Json.Vm(state: "Pending", readyAt: null))
            .On("GET", "/v1/vms/web1", HttpStatusCode.OK, Json.Vm(state: "Starting", readyAt: null))
            .On("GET", "/v1/vms/web1", HttpStatusCode.OK, Json.Vm(state: "Ready"));

        var run = await CliRun.Of(http, null, "vm", "create", "web1", "--vcpus", "1", "--memory", "256", "--image", "demo", "--restart", "on-failure", "--wait");

        Assert.Equal(0, run.ExitCode);
        var post = http.Requests.Single(r => r.Method == HttpMethod.Post);
        Assert.Equal((HttpMethod.Post, "/v1/vms", "Bearer sekrit-key"), (post.Method, post.Path, post.Authorization));
        using var body = JsonDocument.Parse(post.Body!);
        Assert.Equal(
            """{"name":"web1","vcpus":1,"memoryMiB":256,"image":"demo","restartPolicy":"on-failure"}""",
            JsonSerializer.Serialize(body.RootElement));
        // The event stream was tried first (this script has none, so the wait polled).
        Assert.Equal(3, http.Requests.Count(r => r.Path != "/v1/events"));
        Assert.Matches(@"State\s+Ready", run.Out.ToString());
        Assert.Matches(@"Driver\s+any", run.Out.ToString());
        Assert.EndsWith("web1 ready in 2.84 s\n", run.Out.ToString().Replace("\r\n", "\n"));
        Assert.Equal("", run.Error.ToString());
    }

    [Fact]
    public async Task Vm_create_asking_for_hardware_acceleration_sends_it_and_shows_it()
    {
        var created = Json.Vm(state: "Pending", readyAt: null).Replace("\"name\":\"web1\"", "\"name\":\"web1\",\"accelerator\":\"kvm\"");
        var http = new ScriptedHandler().On("POST", "/v1/vms", HttpStatusCode.Created, created);

        var run = await CliRun.Of(http, null, "vm", "create", "web1", "--image", "demo", "--accel", "kvm");

        Assert.Equal(0, run.ExitCode);
        using var body = JsonDocument.Parse(http.Requests.Single().Body!);
        Assert.Equal("kvm", body.RootElement.GetProperty("accelerator").GetString());
        Assert.Matches(@"Accelerator\s+kvm", run.Out.ToString());
    }

    [Fact]
    public async Task Vm_create_sends_the_hostname_the_keys_of_each_key_file_and_the_user_data_bytes_and_shows_only_digests()
    {
        var dir = Directory.CreateTempSubdirectory("cli-bootstrap-");
        try
        {
            var keys = Path.Combine(dir.FullName, "keys.pub");
            File.WriteAllText(keys, "# my keys\nssh-ed25519 AAAA one\n\nssh-rsa BBBB two\n");
            var userData = Path.Combine(dir.FullName, "user-data");
            byte[] bytes = [.. "#!/bin/sh\necho $(id) ; rm -rf /\n"u8, 0, 0xff, (byte)'\n'];
            File.WriteAllBytes(userData, bytes);
            var created = Json.Vm(state: "Pending", readyAt: null).Replace("\"name\":\"web1\"",
                "\"name\":\"web1\",\"bootstrap\":{\"hostname\":\"h1.example.org\",\"sshKeyFingerprints\":[\"SHA256:abc\",\"SHA256:def\"],\"userDataBytes\":36,\"userDataSha256\":\"00ff\"}");
            var http = new ScriptedHandler().On("POST", "/v1/vms", HttpStatusCode.Created, created);

            var run = await CliRun.Of(http, null, "vm", "create", "web1", "--image", "demo", "--hostname", "h1.example.org", "--ssh-key", keys,
                "--user-data", userData);

            Assert.Equal(0, run.ExitCode);
            using var body = JsonDocument.Parse(http.Requests.Single().Body!);
            Assert.Equal("h1.example.org", body.RootElement.GetProperty("hostname").GetString());
            Assert.Equal(["ssh-ed25519 AAAA one", "ssh-rsa BBBB two"], body.RootElement.GetProperty("sshKeys").EnumerateArray().Select(k => k.GetString()));
            Assert.Equal(bytes, body.RootElement.GetProperty("userData").GetBytesFromBase64());
            Assert.Matches(@"Hostname\s+h1.example.org", run.Out.ToString());
            Assert.Matches(@"User-data\s+36 bytes, sha256 00ff", run.Out.ToString());
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task A_user_data_file_over_64_KiB_is_refused_naming_the_file_and_the_limit_before_anything_is_sent()
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(file, new byte[1024 * 1024 + 1]);
            var http = new ScriptedHandler();

            var run = await CliRun.Of(http, null, "vm", "create", "web1", "--image", "demo", "--user-data", file);

            Assert.Equal(1, run.ExitCode);
            Assert.Contains($"--user-data {file}: 1048577 bytes is over the limit of 65536 bytes (64 KiB)", run.Error.ToString());
            Assert.Empty(http.Requests);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Host_show_prints_the_accelerator_and_why_the_host_fell_back()
    {
        var http = new ScriptedHandler().On("GET", "/v1/hosts/h1", HttpStatusCode.OK, """
            {"id":"h1","state":"Up","driver":"qemu","cpus":2,"memoryMiB":4096,"allocatedVcpus":1,"allocatedMemoryMiB":256,"vms":1,
             "reservedCpuMillicores":0,"reservedMemoryMiB":0,"accelerator":"tcg","cpuModel":"max",
             "acceleratorNote":"fell back to TCG: kvm -cpu host: exited before the banner (exit code 134)"}
            """);

        var run = await CliRun.Of(http, null, "host", "show", "h1");

        Assert.Equal(0, run.ExitCode);
        Assert.Matches(@"Accelerator\s+tcg \(max\)", run.Out.ToString());
        Assert.Matches(@"Why\s+fell back to TCG: kvm -cpu host: exited before the banner \(exit code 134\)", run.Out.ToString());
    }

    [Fact]
    public async Task Vm_create_with_a_driver_asks_for_it_and_shows_it()
    {
        var created = Json.Vm(state: "Pending", readyAt: null).Replace("\"name\":\"web1\"", "\"name\":\"web1\",\"driver\":\"kvm\"");
        var http = new ScriptedHandler().On("POST", "/v1/vms", HttpStatusCode.Created, created);

        var run = await CliRun.Of(http, null, "vm", "create", "web1", "--vcpus", "1", "--memory", "256", "--image", "demo", "--driver", "kvm");

        Assert.Equal(0, run.ExitCode);
        using var body = JsonDocument.Parse(http.Requests.Single().Body!);
        Assert.Equal("kvm", body.RootElement.GetProperty("driver").GetString());
        Assert.Matches(@"Driver\s+kvm", run.Out.ToString());
    }

    [Fact]
    public async Task Vm_set_sends_a_merge_patch_and_shows_entitled_and_used_cpu()
    {
        const string resources = """
            ,"resources":{"cpuShares":512,"cpuReservationMillicores":0,"cpuLimitMillicores":null,"memoryReservationMiB":0,"memoryLimitMiB":null,"cpuset":null,"entitledCpuMillicores":250,"usedCpuMillicores":248,"demandCpuMillicores":1000}}
            """;
        var shown = Json.Vm().TrimEnd().TrimEnd('}') + resources;
        var http = new ScriptedHandler().On("PATCH", "/v1/vms/web1/resources", HttpStatusCode.Accepted, shown);

        var run = await CliRun.Of(http, null, "vm", "set", "web1", "--shares", "512", "--limit", "none");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("""{"cpuShares":512,"cpuLimitMillicores":null}""", http.Requests.Single().Body);
        Assert.Matches(@"CPU shares\s+512", run.Out.ToString());
        Assert.Matches(@"CPU entitled\s+0\.25 CPU", run.Out.ToString());
        Assert.Matches(@"CPU used\s+0\.248 CPU", run.Out.ToString());
        Assert.Matches(@"CPU demand\s+1 CPU", run.Out.ToString());
    }

    [Fact]
    public async Task Vm_show_prints_the_network_bandwidth_its_host_entitles_it_to_each_way()
    {
        const string resources = """
            ,"resources":{"cpuShares":1024,"cpuReservationMillicores":0,"cpuLimitMillicores":null,"memoryReservationMiB":0,"memoryLimitMiB":null,"cpuset":null,"entitledCpuMillicores":null,"usedCpuMillicores":null,"demandCpuMillicores":null,"netBps":2097152,"netShares":200,"entitledNetBps":1572864,"entitledNetCeilingBps":2097152}}
            """;
        var http = new ScriptedHandler().On("GET", "/v1/vms/web1", HttpStatusCode.OK, Json.Vm().TrimEnd().TrimEnd('}') + resources);

        var run = await CliRun.Of(http, null, "vm", "show", "web1");

        Assert.Equal(0, run.ExitCode);
        Assert.Matches(@"Network limit\s+2 MiB/s each way", run.Out.ToString());
        Assert.Matches(@"Network shares\s+200", run.Out.ToString());
        Assert.Matches(@"Network entitled\s+1\.5 MiB/s each way, up to 2 MiB/s", run.Out.ToString());
    }

    [Fact]
    public async Task Vm_set_without_anything_to_set_says_so_and_sends_nothing()
    {
        var http = new ScriptedHandler();
        var run = await CliRun.Of(http, null, "vm", "set", "web1");
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("nothing to set", run.Error.ToString());
        Assert.Empty(http.Requests);
    }

    [Fact]
    public async Task Without_a_restart_flag_the_request_leaves_the_policy_to_the_server()
    {
        var http = new ScriptedHandler().On("POST", "/v1/vms", HttpStatusCode.Created, Json.Vm(state: "Pending"));

        await CliRun.Of(http, null, "vm", "create", "web1", "--vcpus", "1", "--memory", "256", "--image", "demo");

        Assert.DoesNotContain("restartPolicy", http.Requests[0].Body);
    }

    [Fact]
    public async Task Json_output_prints_only_the_server_json_on_stdout_and_the_timing_on_stderr()
    {
        var http = new ScriptedHandler()
            .On("POST", "/v1/vms", HttpStatusCode.Created, Json.Vm(state: "Pending", readyAt: null))
            .On("GET", "/v1/vms/web1", HttpStatusCode.OK, Json.Vm(state: "Ready"));

        var run = await CliRun.Of(http, null, "vm", "create", "web1", "--vcpus", "1", "--memory", "256", "--image", "demo", "--wait", "-o", "json");

        Assert.Equal(0, run.ExitCode);
        using var printed = JsonDocument.Parse(run.Out.ToString());
        Assert.Equal("Ready", printed.RootElement.GetProperty("state").GetString());
        Assert.Equal("web1 ready in 2.84 s", run.Error.ToString().Trim());
    }

    [Fact]
    public async Task Vm_list_prints_a_table_and_list_json_prints_the_array()
    {
        var list = $"[{Json.Vm("web2")},{Json.Vm("web1")}]";
        var http = new ScriptedHandler().On("GET", "/v1/vms", HttpStatusCode.OK, list);

        var table = await CliRun.Of(http, null, "vm", "list");
        var json = await CliRun.Of(http, null, "vm", "list", "--output", "json");

        var rows = table.Out.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, rows.Length);
        Assert.StartsWith("web1", rows[1]);
        Assert.Equal(2, JsonDocument.Parse(json.Out.ToString()).RootElement.GetArrayLength());
    }

    [Fact]
    public async Task A_problem_answer_prints_title_detail_and_field_errors_on_stderr_and_exits_1()
    {
        var http = new ScriptedHandler().On("POST", "/v1/vms", HttpStatusCode.BadRequest,
            """{"title":"Invalid VM spec","status":400,"detail":"1 field is invalid.","errors":{"memoryMiB":["must be at least 64"]}}""");

        var run = await CliRun.Of(http, null, "vm", "create", "web1", "--vcpus", "1", "--memory", "1", "--image", "demo");

        Assert.Equal(1, run.ExitCode);
        Assert.Equal("", run.Out.ToString());
        Assert.Equal(["error: Invalid VM spec: 1 field is invalid.", "  memoryMiB: must be at least 64"],
            run.Error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')));
    }

    [Fact]
    public async Task Show_of_an_unknown_vm_prints_the_404_problem()
    {
        var http = new ScriptedHandler().On("GET", "/v1/vms/web1", HttpStatusCode.NotFound, Problem404);

        var run = await CliRun.Of(http, null, "vm", "show", "web1");

        Assert.Equal(1, run.ExitCode);
        Assert.Equal("error: Not Found: no VM named 'web1'", run.Error.ToString().Trim());
    }

    [Fact]
    public async Task Waiting_on_a_vm_that_fails_prints_the_reason_and_exits_1()
    {
        var http = new ScriptedHandler()
            .On("POST", "/v1/vms/web1/start", HttpStatusCode.Accepted, Json.Vm(state: "Starting"))
            .On("GET", "/v1/vms/web1", HttpStatusCode.OK, Json.Vm(state: "Failed", reason: "qemu exited with code 1"));

        var run = await CliRun.Of(http, null, "vm", "start", "web1", "--wait");

        Assert.Equal(1, run.ExitCode);
        Assert.Contains("error: web1 failed: qemu exited with code 1", run.Error.ToString());
        Assert.Matches(@"State\s+Failed", run.Out.ToString());
    }

    [Fact]
    public async Task Waiting_gives_up_at_the_timeout_with_a_clear_message()
    {
        var http = new ScriptedHandler()
            .On("POST", "/v1/vms/web1/stop", HttpStatusCode.Accepted, Json.Vm(state: "Stopping"))
            .On("GET", "/v1/vms/web1", HttpStatusCode.OK, Json.Vm(state: "Stopping"));

        var run = await CliRun.Of(http, null, "vm", "stop", "web1", "--wait", "--timeout", "1");

        Assert.Equal(1, run.ExitCode);
        Assert.Contains("error: timed out after 1 s waiting for web1 to be Stopped (it is Stopping)", run.Error.ToString());
    }

    [Fact]
    public async Task Delete_with_wait_polls_until_the_vm_is_gone()
    {
        var http = new ScriptedHandler()
            .On("DELETE", "/v1/vms/web1", HttpStatusCode.Accepted, Json.Vm(state: "Deleting"))
            .On("GET", "/v1/vms/web1", HttpStatusCode.OK, Json.Vm(state: "Deleting"))
            .On("GET", "/v1/vms/web1", HttpStatusCode.NotFound, Problem404);

        var run = await CliRun.Of(http, null, "vm", "delete", "web1", "--wait");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("web1 deleted", run.Out.ToString().Trim());
    }

    [Fact]
    public async Task Names_are_escaped_into_the_url_path()
    {
        var http = new ScriptedHandler();

        await CliRun.Of(http, null, "vm", "show", "a b/c");

        Assert.Equal("/v1/vms/a%20b%2Fc", http.Requests[0].Path);
    }

    [Fact]
    public async Task A_node_that_refuses_connections_is_named_by_its_url()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop(); // nothing listens there now

        var run = await CliRun.Of(null, Env.Of(("ORCHESTRATOR_URL", $"http://127.0.0.1:{port}"), ("ORCHESTRATOR_API_KEY", "sekrit-key")), "vm", "list");

        Assert.Equal(1, run.ExitCode);
        Assert.StartsWith($"error: cannot reach the node at http://127.0.0.1:{port}: ", run.Error.ToString());
    }

    [Fact]
    public async Task With_no_node_anywhere_the_client_says_how_to_start_one()
    {
        using var empty = new TempDir();

        var run = await CliRun.Of(new ScriptedHandler(), Env.Of(("ORCHESTRATOR_DATA", empty.Path)), "vm", "list");

        Assert.Equal(1, run.ExitCode);
        Assert.StartsWith("error: " + NodeConnectionResolver.NoNodeFound, run.Error.ToString());
    }

    [Fact]
    public async Task The_client_finds_a_local_node_through_its_discovery_files()
    {
        using var data = new TempDir();
        await NodeDiscoveryFiles.WriteAsync(data.Path, "http://127.0.0.1:7480", Environment.ProcessId, "file-key");
        var http = new ScriptedHandler().On("GET", "/v1/images", HttpStatusCode.OK, """[{"name":"demo","description":"busybox"}]""");

        var run = await CliRun.Of(http, Env.Of(("ORCHESTRATOR_DATA", data.Path)), "image", "list");

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("Bearer file-key", http.Requests[0].Authorization);
        Assert.Matches(@"demo\s+busybox", run.Out.ToString());
    }

    [Fact]
    public async Task An_unauthorized_answer_hints_at_the_key_and_never_prints_one()
    {
        var http = new ScriptedHandler().On("GET", "/v1/hosts", HttpStatusCode.Unauthorized, """{"title":"Unauthorized","status":401}""");

        var run = await CliRun.Of(http, null, "host", "list", "--api-key", "wrong-sekrit");

        Assert.Equal(1, run.ExitCode);
        Assert.Contains("error: Unauthorized", run.Error.ToString());
        Assert.Contains("--api-key", run.Error.ToString());
        Assert.DoesNotContain("sekrit", run.Error.ToString() + run.Out.ToString());
    }

    [Fact]
    public async Task A_non_json_error_page_still_gives_a_one_line_error()
    {
        var http = new ScriptedHandler().On("GET", "/v1/vms", HttpStatusCode.BadGateway, "upstream down");

        var run = await CliRun.Of(http, null, "vm", "list");

        Assert.Equal(1, run.ExitCode);
        Assert.Equal("error: Bad Gateway: upstream down", run.Error.ToString().Trim());
    }
}
