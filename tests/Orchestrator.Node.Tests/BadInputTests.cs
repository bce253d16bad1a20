using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>
/// One node shared by the tests of <see cref="BadInputTests"/>: starting a node per case cost more than the cases. The
/// tests name their VMs apart, and a refused create checks that its own name was never created.
/// </summary>
public sealed class BadInputNode : IAsyncLifetime
{
    public NodeProcess Node { get; private set; } = null!;

    // accel = tcg: the host is TCG on every kind of machine, so what a VM that needs KVM does is known.
    public async Task InitializeAsync() => Node = await NodeProcess.StartAsync(null, """
        orchestrator.images.broken { kernel = "broken/vmlinuz", initrd = "broken/initrd.img" }
        orchestrator.host.accel = tcg
        """);

    public async Task DisposeAsync() => await Node.DisposeAsync();
}

[Collection(NodeCollection.Name)]
public sealed class BadInputTests(BadInputNode fixture) : IClassFixture<BadInputNode>
{
    private readonly NodeProcess _node = fixture.Node;

    /// <summary>The names of the VMs there are (not their states: another test's VM may still be booting).</summary>
    private async Task<string> VmsAsync() =>
        string.Join(",", JsonNode.Parse(await _node.Http.GetStringAsync("v1/vms"))!.AsArray().Select(v => (string)v!["name"]!).Order());

    public static TheoryData<string, string> InvalidBodies => new()
    {
        { """{"name":"web1","vcpus":0,"memoryMiB":256,"image":"demo"}""", "vcpus" },
        { """{"name":"web1","vcpus":10000,"memoryMiB":256,"image":"demo"}""", "vcpus" },
        { """{"name":"web1","vcpus":1,"memoryMiB":-256,"image":"demo"}""", "memoryMiB" },
        { """{"name":"web1","vcpus":1,"memoryMiB":256,"image":"windows"}""", "image" },
        { """{"name":"a/b","vcpus":1,"memoryMiB":256,"image":"demo"}""", "name" },
        { """{"name":"..","vcpus":1,"memoryMiB":256,"image":"demo"}""", "name" },
        { """{"name":"web1","vcpus":"abc","memoryMiB":256,"image":"demo"}""", "vcpus" },
        { """{"name":"web1","memoryMiB":256,"image":"demo"}""", "vcpus" },
        { """{"name":"web1","vcpus":1,"memoryMiB":256,"image":"demo","restartPolicy":"sometimes"}""", "restartPolicy" },
        { """{"name":"web1","vcpus":1,"memoryMiB":256,"image":"demo","driver":"xen"}""", "driver" },
        { """{"name":"web1","vcpus":1,"memoryMiB":256,"image":"demo","accelerator":"tcg"}""", "accelerator" },
        { """{"name":"web1","vcpus":1,"memoryMiB":256,"image":"demo","hostname":"web_1;reboot"}""", "hostname" },
        { """{"name":"web1","vcpus":1,"memoryMiB":256,"image":"demo","sshKeys":["ssh-ed25519 AAAA"]}""", "sshKeys[0]" },
        { """{"name":"web1","vcpus":1,"memoryMiB":256,"image":"demo","userData":"not base64!"}""", "userData" },
        { $$"""{"name":"web1","vcpus":1,"memoryMiB":256,"image":"demo","userData":"{{Convert.ToBase64String(new byte[64 * 1024 + 1])}}"}""", "userData" },
    };

    [Fact]
    public async Task User_data_over_64_KiB_is_a_400_naming_the_field_and_the_limit()
    {
        var response = await _node.Http.PostAsJsonAsync("v1/vms",
            new { name = "big", vcpus = 1, memoryMiB = 128, image = "demo", userData = Convert.ToBase64String(new byte[100_000]) });
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal("is 100000 bytes, over the limit of 65536 bytes (64 KiB)", (string?)problem["errors"]!["userData"]![0]);
    }

    [Fact]
    public async Task User_data_of_a_mebibyte_or_more_is_refused_as_a_body_too_large_and_nothing_is_created()
    {
        var before = await VmsAsync();
        var response = await _node.Http.PostAsJsonAsync("v1/vms",
            new { name = "huge", vcpus = 1, memoryMiB = 128, image = "demo", userData = new byte[1024 * 1024 + 1] });
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        var problem = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Contains("1048576 bytes", (string?)problem["detail"]);
        Assert.Equal(before, await VmsAsync());
    }

    [Fact]
    public void The_clients_user_data_limit_is_the_servers() =>
        Assert.Equal(Domain.Vms.VmBootstraps.MaxUserDataBytes, Contracts.CreateVmRequest.MaxUserDataBytes);

    [Theory]
    [MemberData(nameof(InvalidBodies))]
    public async Task An_invalid_spec_is_a_400_naming_the_field_and_nothing_is_created(string body, string field)
    {
        var before = await VmsAsync();
        var response = await _node.Http.PostAsync("v1/vms", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var problem = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.NotNull(problem["errors"]![field]);
        Assert.Equal(before, await VmsAsync());
    }

    [Fact]
    public async Task A_create_lacking_its_required_fields_names_every_one_of_them_on_every_route_and_creates_nothing()
    {
        (string Route, string[] Fields)[] creates =
        [
            ("v1/networks", ["name", "cidr"]), ("v1/volumes", ["name", "sizeGiB"]), ("v1/secgroups", ["name"]),
            ("v1/webhooks", ["url"]), ("v1/tenants", ["id"]), ("v1/images", ["name", "kernel"]),
        ];
        foreach (var (route, fields) in creates)
        {
            var before = await _node.Http.GetStringAsync(route);
            var response = await _node.Http.PostAsync(route, new StringContent("{}", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            var errors = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["errors"]!.AsObject();
            Assert.Equal(fields, errors.Select(e => e.Key).ToArray());
            Assert.All(errors, e => Assert.Equal("is required", (string?)e.Value![0]));
            Assert.Equal(before, await _node.Http.GetStringAsync(route));
        }
    }

    [Theory]
    [InlineData("{not json")]
    [InlineData("[]")]
    [InlineData("null")]
    [InlineData("")]
    public async Task A_malformed_body_is_a_400_and_the_node_keeps_serving(string body)
    {
        var response = await _node.Http.PostAsync("v1/vms", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _node.Http.GetAsync("v1/hosts")).StatusCode);
    }

    [Fact]
    public async Task A_vm_asking_for_a_driver_no_host_runs_waits_pending_saying_so()
    {
        var response = await _node.Http.PostAsJsonAsync("v1/vms", new { name = "native", vcpus = 1, memoryMiB = 256, image = "demo", driver = "kvm" });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);

        var vm = await _node.GetVmAsync("native");
        Assert.Equal("Pending", (string)vm!["state"]!);
        Assert.Equal("kvm", (string)vm["driver"]!);
        Assert.Equal("no up host runs the kvm driver (1 hosts up, running qemu)", (string)vm["reason"]!);
        Assert.Null(vm["host"]);
    }

    [Fact]
    public async Task Concurrent_patches_of_different_resource_fields_all_hold()
    {
        // Pending (it needs KVM, this host is TCG): nothing boots, the ledger still keeps its resources.
        var created = await _node.Http.PostAsJsonAsync("v1/vms", new { name = "patched", vcpus = 2, memoryMiB = 256, image = "demo", accelerator = "kvm" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);

        object[] patches =
        [
            new { cpuShares = 3000 }, new { cpuReservationMillicores = 100 }, new { cpuLimitMillicores = 1500 },
            new { memoryReservationMiB = 64 }, new { memoryLimitMiB = 512 }, new { cpuset = "0" },
        ];
        var answers = await Task.WhenAll(patches.Select(p => _node.Http.PatchAsJsonAsync("v1/vms/patched/resources", p)));

        Assert.All(answers, a => Assert.Equal(HttpStatusCode.Accepted, a.StatusCode));
        var resources = (await _node.GetVmAsync("patched"))!["resources"]!;
        Assert.Equal((3000, 100, 1500, 64, 512, "0"), ((int)resources["cpuShares"]!, (int)resources["cpuReservationMillicores"]!,
            (int)resources["cpuLimitMillicores"]!, (int)resources["memoryReservationMiB"]!, (int)resources["memoryLimitMiB"]!,
            (string)resources["cpuset"]!));
    }

    [Fact]
    public async Task A_vm_that_needs_kvm_waits_pending_on_a_tcg_host_and_the_host_says_why_it_is_tcg()
    {
        var response = await _node.Http.PostAsJsonAsync("v1/vms", new { name = "fast", vcpus = 1, memoryMiB = 256, image = "demo", accelerator = "kvm" });
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);

        var vm = await _node.GetVmAsync("fast");
        var host = JsonNode.Parse(await _node.Http.GetStringAsync("v1/hosts"))!.AsArray().Single()!;
        var id = (string)host["id"]!;
        Assert.Equal("Pending", (string)vm!["state"]!);
        Assert.Equal("kvm", (string)vm["accelerator"]!);
        Assert.Equal($"no up host has kvm acceleration (1 hosts up: {id} runs tcg (accel = tcg (configured; not probed)))", (string)vm["reason"]!);
        Assert.Equal("tcg", (string)host["accelerator"]!);
        Assert.Equal("max", (string)host["cpuModel"]!);
        var one = JsonNode.Parse(await _node.Http.GetStringAsync($"v1/hosts/{id}"))!;
        Assert.Equal("accel = tcg (configured; not probed)", (string)one["acceleratorNote"]!);
        Assert.Equal(HttpStatusCode.NotFound, (await _node.Http.GetAsync("v1/hosts/no-such-host")).StatusCode);
    }

    [Fact]
    public async Task A_duplicate_name_is_a_409_and_the_first_vm_is_untouched()
    {
        var first = await _node.CreateVmAsync("dup");
        var response = await _node.Http.PostAsJsonAsync("v1/vms", new { name = "dup", vcpus = 2, memoryMiB = 512, image = "demo" });
        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        var vm = await _node.GetVmAsync("dup");
        Assert.Equal((string)first["id"]!, (string)vm!["id"]!);
        Assert.Equal(1, (int)vm["vcpus"]!);
    }

    [Fact]
    public async Task Requests_without_the_key_are_refused()
    {
        using var anonymous = new HttpClient { BaseAddress = _node.Http.BaseAddress };
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("v1/vms")).StatusCode);
        anonymous.DefaultRequestHeaders.Authorization = new("Bearer", "orc_not-the-key");
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("v1/vms")).StatusCode);
    }

    [Fact]
    public async Task An_unknown_vm_is_a_404_problem()
    {
        var response = await _node.Http.GetAsync("v1/vms/ghost");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _node.Http.PostAsync("v1/vms/ghost/stop", null)).StatusCode);
    }

    [Fact]
    public async Task An_image_whose_files_are_missing_is_left_out_of_the_catalog()
    {
        var images = await _node.Http.GetStringAsync("v1/images");
        Assert.Contains("\"demo\"", images);
        Assert.DoesNotContain("broken", images);
        Assert.Contains("image 'broken' left out", _node.Log);
    }
}
