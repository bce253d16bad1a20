namespace Orchestrator.Cli.Tests;

public class ParsingTests
{
    [Fact]
    public void Vm_create_with_wait_binds_every_option()
    {
        var a = RecordingActions.Bind<VmCreateArgs>(
            "vm", "create", "web1", "--vcpus", "1", "--memory", "256", "--image", "demo", "--wait",
            "--restart", "always", "--driver", "kvm", "--timeout", "30", "--url", "http://h:1", "--api-key", "k", "--data", "/d", "--output", "json");

        Assert.Equal(
            new VmCreateArgs(new ClientArgs("http://h:1", "k", "/d", OutputFormat.Json), "web1", 1, 256, "demo", "always", true, TimeSpan.FromSeconds(30),
                Driver: "kvm"),
            a);
    }

    [Fact]
    public void Vm_create_binds_the_hostname_every_ssh_key_file_and_the_user_data_file_unread()
    {
        var a = RecordingActions.Bind<VmCreateArgs>("vm", "create", "web1", "--image", "demo", "--hostname", "web1.example.org",
            "--ssh-key", "/k/a.pub", "--ssh-key", "/k/b.pub", "--user-data", "/u/init.sh");

        Assert.Equal("web1.example.org", a.Bootstrap!.Hostname);
        Assert.Equal(["/k/a.pub", "/k/b.pub"], a.Bootstrap.SshKeyFiles);
        Assert.Equal("/u/init.sh", a.Bootstrap.UserDataFile);
        Assert.Null(RecordingActions.Bind<VmCreateArgs>("vm", "create", "web1", "--image", "demo").Bootstrap);
    }

    [Fact]
    public void Vm_create_takes_shares_reservation_and_limit_in_millicores_or_cpus()
    {
        var a = RecordingActions.Bind<VmCreateArgs>("vm", "create", "db", "--vcpus", "2", "--memory", "512", "--image", "demo",
            "--shares", "4096", "--reservation", "0.5", "--limit", "1500m", "--memory-reservation", "128", "--cpuset", "0-1");

        Assert.Equal(new VmResourceArgs(4096, 500, 1500, 128, null, "0-1"), a.Resources! with { Cleared = null });
        Assert.Equal(5, a.Resources!.ToPatch().Count);
    }

    [Fact]
    public void Vm_set_patches_only_what_is_given_and_none_clears_a_field()
    {
        var a = RecordingActions.Bind<VmSetArgs>("vm", "set", "db", "--limit", "none", "--shares", "512");

        Assert.Equal("db", a.Name);
        var patch = a.Resources.ToPatch();
        Assert.Equal(2, patch.Count);
        Assert.Equal(512, patch["cpuShares"]);
        Assert.True(patch.ContainsKey("cpuLimitMillicores"));
        Assert.Null(patch["cpuLimitMillicores"]);
    }

    [Theory]
    [InlineData("--reservation", "0.0005")]
    [InlineData("--limit", "lots")]
    [InlineData("--shares", "-3")]
    public async Task Resource_amounts_that_do_not_parse_are_refused_naming_the_option(string option, string value)
    {
        var http = new ScriptedHandler();
        var run = await CliRun.Of(http, null, "vm", "create", "db", "--vcpus", "1", "--memory", "256", "--image", "demo", option, value);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains(option, run.Error.ToString());
        Assert.Empty(http.Requests);
    }

    [Fact]
    public void Vm_create_defaults_to_one_vcpu_and_256_mib()
    {
        var a = RecordingActions.Bind<VmCreateArgs>("vm", "create", "k1", "--image", "demo", "--driver", "kvm", "--wait");

        Assert.Equal((1, 256, "kvm", true), (a.Vcpus, a.MemoryMiB, a.Driver, a.Wait));
    }

    [Fact]
    public void Vm_create_defaults_to_no_wait_a_120_second_timeout_the_server_restart_policy_and_tables()
    {
        var a = RecordingActions.Bind<VmCreateArgs>("vm", "create", "web1", "--vcpus", "2", "--memory", "512", "--image", "demo");

        Assert.False(a.Wait);
        Assert.Equal(TimeSpan.FromSeconds(120), a.Timeout);
        Assert.Null(a.RestartPolicy);
        Assert.Null(a.Driver);
        Assert.Equal(new ClientArgs(null, null, null, OutputFormat.Table), a.Client);
    }

    [Theory]
    [InlineData(ListKind.Vms, "vm", "list")]
    [InlineData(ListKind.Hosts, "host", "list")]
    [InlineData(ListKind.Images, "image", "list")]
    public void List_commands_bind_to_their_kind(ListKind kind, params string[] args) =>
        Assert.Equal(kind, RecordingActions.Bind<ListArgs>(args).Kind);

    [Fact]
    public void Image_import_binds_the_file_as_a_full_path_with_qcow2_and_debian_by_default()
    {
        var a = RecordingActions.Bind<ImageImportArgs>("image", "import", "mydisk", "--file", "disk.qcow2");
        Assert.Equal(new ImageImportArgs(new ClientArgs(null, null, null, OutputFormat.Table), "mydisk", Path.GetFullPath("disk.qcow2"), "qcow2",
            "debian", false), a);
        var raw = RecordingActions.Bind<ImageImportArgs>("image", "import", "r", "--file", "/tmp/r.img", "--format", "raw", "--kernel", "demo", "--public");
        Assert.Equal(("/tmp/r.img", "raw", "demo", true), (raw.File, raw.Format, raw.Kernel, raw.Public));
    }

    [Theory]
    [InlineData("show", "GET")]
    [InlineData("delete", "DELETE")]
    public void Image_show_and_delete_call_the_image_by_name(string verb, string method)
    {
        var a = RecordingActions.Bind<ApiCallArgs>("image", verb, "my disk");
        Assert.Equal((method, "v1/images/my%20disk"), (a.Method, a.Path));
    }

    [Fact]
    public void Vm_show_binds_the_name_and_the_short_output_flag() =>
        Assert.Equal(
            new VmShowArgs(new ClientArgs(null, null, null, OutputFormat.Json), "web1"),
            RecordingActions.Bind<VmShowArgs>("vm", "show", "web1", "-o", "json"));

    [Theory]
    [InlineData("stop", VmChange.Stop)]
    [InlineData("start", VmChange.Start)]
    [InlineData("delete", VmChange.Delete)]
    public void Vm_stop_start_and_delete_bind_name_and_wait(string verb, VmChange change)
    {
        Assert.Equal(
            new VmChangeArgs(new ClientArgs(null, null, null, OutputFormat.Table), change, "web1", true, TimeSpan.FromSeconds(120)),
            RecordingActions.Bind<VmChangeArgs>("vm", verb, "web1", "--wait"));
        Assert.False(RecordingActions.Bind<VmChangeArgs>("vm", verb, "web1").Wait);
    }

    [Fact]
    public void Vm_console_binds_the_name_and_force()
    {
        Assert.Equal(new VmConsoleArgs(new ClientArgs(null, null, null, OutputFormat.Table), "web1", false),
            RecordingActions.Bind<VmConsoleArgs>("vm", "console", "web1"));
        Assert.True(RecordingActions.Bind<VmConsoleArgs>("vm", "console", "web1", "--force").Force);
        Assert.NotEmpty(CliSyntax.Build(new RecordingActions()).Parse(["vm", "console"]).Errors);
    }

    [Theory]
    [InlineData("pause", VmChange.Pause)]
    [InlineData("resume", VmChange.Resume)]
    public void Vm_pause_and_resume_bind_the_name_and_take_no_wait(string verb, VmChange change)
    {
        Assert.Equal(
            new VmChangeArgs(new ClientArgs(null, null, null, OutputFormat.Table), change, "web1", false, TimeSpan.Zero),
            RecordingActions.Bind<VmChangeArgs>("vm", verb, "web1"));
        Assert.NotEmpty(CliSyntax.Build(new RecordingActions()).Parse(["vm", verb, "web1", "--wait"]).Errors);
    }

    [Theory]
    [InlineData("vm", "create", "web1", "--vcpus", "1", "--memory", "256")] // no --image
    [InlineData("vm", "create", "web1", "--vcpus", "abc", "--memory", "256", "--image", "demo")]
    [InlineData("vm", "create", "--vcpus", "1", "--memory", "256", "--image", "demo")] // no NAME
    [InlineData("vm", "create", "web1", "--vcpus", "1", "--memory", "256", "--image", "demo", "--restart", "sometimes")]
    [InlineData("vm", "create", "web1", "--vcpus", "1", "--memory", "256", "--image", "demo", "--timeout", "0")]
    [InlineData("vm", "create", "web1", "--vcpus", "1", "--memory", "256", "--image", "demo", "--wait", "--timeout", "2147483647")]
    [InlineData("vm", "stop", "web1", "--wait", "--timeout", "604801")]
    [InlineData("vm", "create", "web1", "--vcpus", "1", "--memory", "99999999999", "--image", "demo")]
    [InlineData("vm", "create", "web1", "--vcpus", "1", "--memory", "256", "--image", "demo", "--driver", "xen")]
    [InlineData("vm", "show")]
    [InlineData("vm", "list", "--output", "yaml")]
    [InlineData("vm", "list", "--url", "not a url")]
    [InlineData("vm")]
    [InlineData]
    public async Task Bad_local_input_is_a_usage_error_with_exit_code_2_and_reaches_no_action(params string[] args)
    {
        var run = await CliRun.Of(new ScriptedHandler(), null, args);

        Assert.Equal(2, run.ExitCode);
        Assert.StartsWith("error: ", run.Error.ToString());
        Assert.Contains("--help'", run.Error.ToString());
        Assert.Equal("", run.Out.ToString());
    }

    [Fact]
    public async Task A_missing_image_names_the_option_in_the_usage_error()
    {
        var run = await CliRun.Of(null, null, "vm", "create", "web1", "--vcpus", "1", "--memory", "256");

        Assert.Contains("--image", run.Error.ToString());
    }

    [Fact]
    public async Task Help_is_not_an_error()
    {
        var run = await CliRun.Of(null, null, "vm", "create", "--help");

        Assert.Equal(0, run.ExitCode);
        Assert.Contains("--vcpus", run.Out.ToString());
    }
}
