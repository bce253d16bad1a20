using Orchestrator.Api;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Node.Tests;

/// <summary>The apply file parser (Api/ApplyFile.cs): no node needed. Every error names its path in the file.</summary>
public sealed class ApplyFileTests
{
    private static IReadOnlyList<FieldError> Errors(string text)
    {
        var (vms, errors) = ApplyFile.Parse(text);
        Assert.Empty(vms);
        Assert.NotEmpty(errors);
        return errors;
    }

    private static string ErrorFor(string text, string path)
    {
        var errors = Errors(text);
        var error = errors.FirstOrDefault(e => e.Field == path);
        Assert.True(error is not null, $"no error for {path}; got {string.Join("; ", errors.Select(e => $"{e.Field}: {e.Message}"))}");
        return error.Message;
    }

    [Fact]
    public void Hostname_ssh_keys_and_user_data_read_into_the_bootstrap_the_user_data_from_base64_byte_for_byte()
    {
        byte[] userData = [.. "#!/bin/sh\necho \"$(hostname)\" ; ünïcode\n"u8, 0, 0xff, (byte)'\n'];
        var (vms, errors) = ApplyFile.Parse($$"""
            vms {
              web-1 {
                vcpus = 1, memory-mib = 128, image = demo
                hostname = web-1.example.org
                ssh-keys = ["ssh-ed25519 AAAA one", "ssh-rsa BBBB two"]
                user-data-base64 = "{{Convert.ToBase64String(userData)}}"
              }
            }
            """);

        Assert.Empty(errors);
        var bootstrap = Assert.Single(vms).Spec.Bootstrap!;
        Assert.Equal("web-1.example.org", bootstrap.Hostname);
        Assert.Equal(["ssh-ed25519 AAAA one", "ssh-rsa BBBB two"], bootstrap.SshKeys!);
        Assert.Equal(userData, bootstrap.UserData);
    }

    [Fact]
    public void Ssh_keys_that_are_no_list_of_strings_and_bad_bootstrap_values_are_named_by_their_path()
    {
        Assert.Equal("must be a list of strings", ErrorFor("vms { a { vcpus = 1, memory-mib = 128, image = demo, ssh-keys = \"k\" } }", "vms.a.ssh-keys"));
        Assert.Equal("must be base64 (base64 -w0 FILE)",
            ErrorFor("vms { a { vcpus = 1, memory-mib = 128, image = demo, user-data-base64 = \"#!/bin/sh\" } }", "vms.a.user-data-base64"));
        var (vms, _) = ApplyFile.Parse("vms { a { vcpus = 1, memory-mib = 128, image = demo, hostname = \"x_y\", ssh-keys = [\"nope\"] } }");
        var invalid = ApplyFile.Validate(vms, VmSpecLimits.Default, new HashSet<string> { "demo" });
        Assert.Equal(["vms.a.hostname", "vms.a.ssh-keys[0]"], invalid.Select(e => e.Field));
    }

    [Fact]
    public void Disk_limits_read_from_the_file_and_from_a_resources_patch_and_bad_ones_are_named()
    {
        var (vms, errors) = ApplyFile.Parse("vms { a { vcpus = 1, memory-mib = 128, image = demo, disk-iops = 500, disk-bps = 4194304, disk-shares = 200 } }");
        Assert.Empty(errors);
        Assert.Equal(new VmResources(DiskIops: 500, DiskBps: 4194304, DiskShares: 200), Assert.Single(vms).Spec.Resources);
        Assert.Equal("must be a whole number, was 'fast'", ErrorFor("vms { a { vcpus = 1, memory-mib = 128, image = demo, disk-bps = fast } }", "vms.a.disk-bps"));
        var (tooSlow, _) = ApplyFile.Parse("vms { a { vcpus = 1, memory-mib = 128, image = demo, disk-bps = 10 } }");
        Assert.Equal(["vms.a.disk-bps"], ApplyFile.Validate(tooSlow, VmSpecLimits.Default, new HashSet<string> { "demo" }).Select(e => e.Field));

        var (patch, patchErrors) = ResourcesPatch.Parse(System.Text.Json.JsonDocument.Parse("""{"diskBps":8388608,"diskShares":null}""").RootElement);
        Assert.Empty(patchErrors);
        Assert.Equal(["diskBps", "diskShares"], patch!.Fields);
        Assert.Equal(8388608, patch.Values.DiskBps);
        var (_, bad) = ResourcesPatch.Parse(System.Text.Json.JsonDocument.Parse("""{"diskIops":"many"}""").RootElement);
        Assert.Equal(["diskIops"], bad.Select(e => e.Field));
    }

    [Fact]
    public void A_full_file_reads_into_specs_with_resources_labels_and_state()
    {
        var (vms, errors) = ApplyFile.Parse("""
            # the web tier
            vms {
              web-1 {
                vcpus = 2
                memory-mib = 256
                image = demo
                restart = always
                state = stopped
                cpu-shares = 2048
                cpu-reservation = 500m
                cpu-limit = 1.5
                memory-reservation-mib = 128
                memory-limit-mib = 512
                cpuset = "0-1"
                labels { env = dev, tier = "web" }
                driver = kvm
              }
              db { vcpus = 1, memory-mib = 128, image = demo }
            }
            """);

        Assert.Empty(errors);
        Assert.Equal(["db", "web-1"], vms.Select(v => v.Name));
        var db = vms[0];
        Assert.Equal(new VmSpec("db", 1, 128, "demo"), db.Spec with { Labels = null });
        Assert.Null(db.Spec.Resources);
        Assert.Null(db.Spec.Labels);
        Assert.Equal(DesiredState.Running, db.State);
        var web = vms[1];
        Assert.Equal((2, 256, "demo", RestartPolicy.Always), (web.Spec.Vcpus, web.Spec.MemoryMiB, web.Spec.Image, web.Spec.RestartPolicy));
        Assert.Equal(new VmResources(2048, 500, 1500, 128, 512, "0-1"), web.Spec.Resources);
        Assert.Equal(new Dictionary<string, string> { ["env"] = "dev", ["tier"] = "web" }, web.Spec.Labels);
        Assert.Equal(DesiredState.Stopped, web.State);
        Assert.Equal("kvm", web.Spec.Driver);
        Assert.Null(db.Spec.Driver);
    }

    [Fact]
    public void Dotted_keys_are_the_same_file()
    {
        var (vms, errors) = ApplyFile.Parse("""
            vms.web-1.vcpus = 1
            vms.web-1.memory-mib = 128
            vms.web-1.image = demo
            vms.web-1.labels.env = dev
            """);

        Assert.Empty(errors);
        Assert.Equal("dev", Assert.Single(vms).Spec.Labels!["env"]);
    }

    [Fact]
    public void An_empty_vms_block_is_a_file_that_wants_no_vms()
    {
        var (vms, errors) = ApplyFile.Parse("vms {}");
        Assert.Empty(errors);
        Assert.Empty(vms);
    }

    [Theory]
    [InlineData("vms { web-1 { vcpus = two, memory-mib = 128, image = demo } }", "vms.web-1.vcpus", "whole number")]
    [InlineData("vms { web-1 { vcpus = 1.5, memory-mib = 128, image = demo } }", "vms.web-1.vcpus", "whole number")]
    [InlineData("vms { web-1 { memory-mib = 128, image = demo } }", "vms.web-1.vcpus", "required")]
    [InlineData("vms { web-1 { vcpus = 1, memory-mib = 128 } }", "vms.web-1.image", "required")]
    [InlineData("vms { web-1 { vcpus = 1, memory-mib = 128, image = demo, cpus = 2 } }", "vms.web-1.cpus", "unknown key")]
    [InlineData("vms { web-1 { vcpus = 1, memory-mib = 128, image = demo, restart = sometimes } }", "vms.web-1.restart", "always, on-failure, never")]
    [InlineData("vms { web-1 { vcpus = 1, memory-mib = 128, image = demo, state = paused } }", "vms.web-1.state", "running or stopped")]
    [InlineData("vms { web-1 { vcpus = 1, memory-mib = 128, image = demo, cpu-limit = lots } }", "vms.web-1.cpu-limit", "millicores")]
    [InlineData("vms { web-1 { vcpus = [1, 2], memory-mib = 128, image = demo } }", "vms.web-1.vcpus", "single value")]
    [InlineData("vms { web-1 { vcpus = 1, memory-mib = 128, image = demo, labels = dev } }", "vms.web-1.labels", "object")]
    [InlineData("vms { Web_1 { vcpus = 1, memory-mib = 128, image = demo } }", "vms.Web_1", "not a valid VM name")]
    [InlineData("vms { \"a.b\" { vcpus = 1, memory-mib = 128, image = demo } }", "vms.a.b", "not a valid VM name")]
    [InlineData("vms { web-1 = 3 }", "vms.web-1", "must be an object")]
    [InlineData("vms = 3", "vms", "object")]
    [InlineData("vm { web-1 { vcpus = 1 } }", "vm", "unknown key")]
    [InlineData("", "vms", "required")]
    public void An_error_names_the_path_in_the_file(string text, string path, string message)
    {
        Assert.Contains(message, ErrorFor(text, path));
    }

    [Fact]
    public void Every_bad_field_is_named_not_just_the_first()
    {
        var errors = Errors("vms {\n a { vcpus = x, memory-mib = y, image = demo }\n b { vcpus = 1, image = demo }\n}");

        Assert.Equal(["vms.a.memory-mib", "vms.a.vcpus", "vms.b.memory-mib"], errors.Select(e => e.Field).Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("vms { web-1 { vcpus = 1, vcpus = 2, memory-mib = 128, image = demo } }", "vms.web-1.vcpus")]
    [InlineData("vms { web-1 { vcpus = 1, memory-mib = 128, image = demo }\n web-1 { vcpus = 2 } }", "vms.web-1")]
    [InlineData("vms { web-1 { vcpus = 1, memory-mib = 128, image = demo } }\nvms.web-1.vcpus = 2", "vms.web-1.vcpus")]
    public void A_vm_or_a_field_given_twice_is_refused_rather_than_merged(string text, string path)
    {
        Assert.Contains("twice", ErrorFor(text, path));
    }

    [Theory]
    [InlineData("include \"/etc/passwd\"\nvms {}", "file")]
    [InlineData("vms { include \"/etc/orchestrator/secret.conf\" }", "vms")]
    public void Include_is_refused_and_no_file_is_read(string text, string path)
    {
        Assert.Contains("include is not allowed", ErrorFor(text, path));
    }

    [Theory]
    [InlineData("vms { web-1 { vcpus = 1, memory-mib = 128, image = ${HOME} } }")]
    [InlineData("vms { web-1 { vcpus = 1, memory-mib = 128, image = ${?ORCHESTRATOR_API_KEY} } }")]
    [InlineData("a = ${b}\nb = ${a}\nvms {}")]
    public void Substitutions_are_refused_before_they_can_read_the_environment_or_loop(string text)
    {
        Assert.Contains(Errors(text), e => e.Message.Contains("substitutions", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(30_000)]
    public void Deep_nesting_is_refused_without_recursing_into_it(int depth)
    {
        var objects = "vms { web-1 { labels " + string.Concat(Enumerable.Repeat("{ a ", depth)) + string.Concat(Enumerable.Repeat("}", depth)) + " } }";
        var dotted = "vms.web-1.labels." + string.Join(".", Enumerable.Repeat("a", depth)) + " = 1";
        var lists = "vms { web-1 { vcpus = " + new string('[', depth) + new string(']', depth) + " } }";

        Assert.Contains(Errors(objects), e => e.Message.Contains("nested deeper", StringComparison.Ordinal));
        Assert.Contains(Errors(dotted), e => e.Message.Contains("nested deeper", StringComparison.Ordinal));
        Assert.Contains(Errors(lists), e => e.Message.Contains("nested deeper", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("vms { web-1 { vcpus = [ } ] } }")]
    [InlineData("vms { web-1 { vcpus = [1 = 2] } }")]
    public void A_malformed_list_is_an_error_where_the_parser_would_loop_for_ever(string text)
    {
        var errors = Errors(text);
        Assert.Contains(errors, e => e.Field.StartsWith("vms.web-1", StringComparison.Ordinal) || e.Field == "file");
    }

    [Theory]
    [InlineData("vms { web-1 { vcpus = 1 }, web-1 { memory-mib = 3 } }")]
    [InlineData("vms { web-1 { image = \"unterminated\\q\" } }")]
    [InlineData("}}}}")]
    public void Text_that_is_not_hocon_is_an_error_on_the_file(string text)
    {
        Assert.NotEmpty(Errors(text));
    }

    [Fact]
    public void Size_and_vm_count_are_limited()
    {
        var huge = "vms {}\n#" + new string('x', ApplyFile.MaxBytes);
        Assert.Contains("larger than", ErrorFor(huge, "file"));

        var many = "vms {\n" + string.Concat(Enumerable.Range(0, ApplyFile.MaxVms + 1).Select(i => $"v{i} {{ vcpus = 1, memory-mib = 128, image = demo }}\n")) + "}";
        Assert.Contains("at most 1000", ErrorFor(many, "vms"));
    }

    [Fact]
    public void Long_keys_are_shortened_when_named()
    {
        var key = new string('k', 5000);
        var error = Errors($"vms {{ web-1 {{ vcpus = 1, memory-mib = 128, image = demo, {key} = 1 }} }}").Single();
        Assert.True(error.Field.Length < 100, error.Field);
    }

    [Fact]
    public void Spec_errors_map_to_the_file_s_field_names()
    {
        var (vms, _) = ApplyFile.Parse("vms { web-1 { vcpus = 0, memory-mib = 128, image = windows, cpu-shares = 1, driver = xen, labels { Env = x } } }");

        var errors = ApplyFile.Validate(vms, VmSpecLimits.Default, new HashSet<string> { "demo" });

        Assert.Equal(["vms.web-1.driver", "vms.web-1.image", "vms.web-1.labels", "vms.web-1.vcpus"], errors.Select(e => e.Field).Distinct().Order(StringComparer.Ordinal));
        Assert.Equal("vms.web-1.cpu-reservation", ApplyFile.FieldPath("web-1", "cpuReservationMillicores"));
        Assert.Equal("vms.web-1.labels.env", ApplyFile.FieldPath("web-1", "labels.env"));
        Assert.Equal("vms.web-1", ApplyFile.FieldPath("web-1", "name"));
    }

    [Theory]
    [InlineData(@"vms { web { vcpus = 1, memory-mib = 256, image = ""demo\n"" } }", "vms.web.image")]
    [InlineData(@"vms { web { vcpus = 1, memory-mib = 256, image = demo, labels { env = ""dev\t"" } } }", "vms.web.labels.env")]
    [InlineData(@"vms { web { vcpus = 1, memory-mib = 256, image = demo, restart = ""always\r\n"" } }", "vms.web.restart")]
    [InlineData(@"vms { ""web\n"" { vcpus = 1, memory-mib = 256, image = demo } }", @"vms.web\n")]
    public void A_value_or_name_ending_in_a_control_character_is_refused_not_trimmed(string text, string field)
    {
        var (vms, errors) = ApplyFile.Parse(text);
        Assert.Empty(vms);
        Assert.Contains(errors, e => e.Field == field);
    }
}
