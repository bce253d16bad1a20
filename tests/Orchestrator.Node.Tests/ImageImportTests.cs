using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>
/// Image import through a real node and real QEMU (issue 18, part 5): a qcow2 imported with the CLI boots a VM with the demo
/// kernel on an overlay of it (its first sector's boot counter proves the disk is the image's); hostile images are refused
/// naming the field with nothing left in the store; another tenant neither sees nor boots a private image. Across nodes with
/// stores of their own, a host fetches an image it lacks and refuses a copy whose hash is not the ledger's.
/// </summary>
[Collection(NodeCollection.Name)]
public sealed class ImageImportTests(ITestOutputHelper output)
{
    private const long MaxBytes = 4L << 20;

    [Fact]
    public async Task An_imported_qcow2_boots_with_a_catalog_kernel_and_hostile_or_foreign_images_get_nowhere()
    {
        await using var node = await NodeProcess.StartAsync(output, extraConfig: $"orchestrator.images-import.max-bytes = {MaxBytes}\n");
        using var work = new TempFiles();
        var store = Path.Combine(node.DataDir, "images");

        var good = await CountedQcow2Async(work, boots: 41);

        var import = await OrchestratorCommand.RunAsync(output, ["image", "import", "counted", "--file", good, "--kernel", "demo", "--data", node.DataDir],
            TimeSpan.FromMinutes(2), start =>
            {
                start.Environment.Remove("ORCHESTRATOR_URL");
                start.Environment.Remove("ORCHESTRATOR_API_KEY");
            });
        Assert.True(import.ExitCode == 0, import.Error);
        var sha256 = Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(good)));
        Assert.Contains($"sha256 {sha256}", import.Out);
        var shown = JsonNode.Parse(await node.Http.GetStringAsync("v1/images/counted"))!;
        Assert.Equal("imported", (string?)shown["kind"]);
        Assert.Equal(1L << 20, (long)shown["virtualBytes"]!);
        var file = Path.Combine(store, $"{shown["id"]}.qcow2");
        Assert.True(File.Exists(file), $"{file} is in the store");

        // Hostile images: refused naming the field, nothing of them kept.
        var passwd = work.File("passwd.qcow2");
        await QemuImgAsync("create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", passwd, "1M");
        await AssertRefusedAsync(node.Http, "evil", "qcow2", passwd, "file", "backing file");
        await AssertRefusedAsync(node.Http, "liar", "raw", good, "format", "declared raw");
        var big = work.File("big.raw");
        await File.WriteAllBytesAsync(big, new byte[MaxBytes + 4096]);
        await AssertRefusedAsync(node.Http, "big", "raw", big, "file", "larger than");
        // Over the tenant's storage quota: refused naming the quota (before the upload is read: its length is known).
        using var tight = node.ClientWith(await node.TenantKeyAsync("tight", quota: new { storageGiB = 0 }));
        var overQuota = await Upload(tight, "counted&format=qcow2&kernel=demo", good);
        var overQuotaBody = await overQuota.Content.ReadAsStringAsync();
        Assert.True(overQuota.StatusCode == HttpStatusCode.Forbidden, $"{(int)overQuota.StatusCode} {overQuotaBody}");
        Assert.Contains("quota exceeded: 0 of 0 GiB of storage in use, 1 more asked", overQuotaBody);
        Assert.Equal(HttpStatusCode.NotFound, (await tight.GetAsync("v1/images/counted")).StatusCode);
        Assert.Equal([Path.GetFileName(file)], Directory.EnumerateFileSystemEntries(store).Select(f => Path.GetFileName(f)).ToList());

        // Another tenant: not listed, not found, not bootable, not deletable.
        using var bravo = node.ClientWith(await node.TenantKeyAsync("bravo"));
        Assert.DoesNotContain("counted", await bravo.GetStringAsync("v1/images"));
        Assert.Equal(HttpStatusCode.NotFound, (await bravo.GetAsync("v1/images/counted")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await bravo.DeleteAsync("v1/images/counted")).StatusCode);
        var foreign = await bravo.PostAsJsonAsync("v1/vms", new { name = "thief", vcpus = 1, memoryMiB = 128, image = "counted" });
        Assert.Equal(HttpStatusCode.BadRequest, foreign.StatusCode);
        Assert.Contains("unknown image 'counted'", await foreign.Content.ReadAsStringAsync());
        var makePublic = await Upload(bravo, "mine&format=qcow2&kernel=demo&public=true", good);
        Assert.Equal(HttpStatusCode.Forbidden, makePublic.StatusCode);

        // Its owner boots it: the demo kernel on an overlay of the imported disk.
        var created = await node.Http.PostAsJsonAsync("v1/vms", new { name = "onimage", vcpus = 1, memoryMiB = 128, image = "counted" });
        Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
        var vm = await node.WaitForVmAsync("onimage", "Ready", v => Console(v, "ORCHESTRATOR-GUEST-READY onimage"));
        Assert.True(Console(vm, "ORCHESTRATOR-GUEST-READY onimage boot=42"), $"the VM's console: {vm["consoleTail"]}");

        // Kept while the VM's disk backs on it; deleted with its file once it does not.
        var kept = await node.Http.DeleteAsync("v1/images/counted");
        Assert.Equal(HttpStatusCode.Conflict, kept.StatusCode);
        Assert.Contains("VM 'onimage'", await kept.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Accepted, (await node.Http.DeleteAsync("v1/vms/onimage")).StatusCode);
        await node.Eventually(async () => (await node.Http.GetAsync("v1/vms/onimage")).StatusCode == HttpStatusCode.NotFound ? true : (bool?)null,
            TimeSpan.FromSeconds(90), "the VM to be deleted");
        Assert.Equal(HttpStatusCode.NoContent, (await node.Http.DeleteAsync("v1/images/counted")).StatusCode);
        Assert.False(File.Exists(file), $"{file} is gone");
    }

    /// <summary>
    /// Two hosts in namespaces of their own, each with its own image store: two images imported through h1 are in h1's store
    /// only. A VM on one, placed on h2, boots from the copy h2 fetched (boot=42 proves the disk is the image's); a VM on the
    /// other, whose file in h1's store was corrupted after import, fails its start naming the image and the hash, and h2's
    /// store keeps nothing of it. Deleting the image removes h2's copy too.
    /// </summary>
    [Fact]
    public async Task A_host_fetches_an_image_it_lacks_from_the_node_that_has_it_and_refuses_a_copy_whose_hash_is_not_the_ledgers()
    {
        await using var cluster = await MultiHostCluster.StartAsync(output, new NetworkNamespaces("orcif", "10.219.85"), hosts: 2);
        var (h1, h2) = (cluster.Node(1), cluster.Node(2));
        using var work = new TempFiles();
        var good = await CountedQcow2Async(work, boots: 41);
        var ids = new Dictionary<string, string>();
        foreach (var name in new[] { "counted", "tampered" })
        {
            var imported = await Upload(h1.Http, $"{name}&format=qcow2&kernel=demo", good);
            Assert.True(imported.StatusCode == HttpStatusCode.Created, await imported.Content.ReadAsStringAsync());
            ids[name] = (string)JsonNode.Parse(await imported.Content.ReadAsStringAsync())!["id"]!;
        }

        var (store1, store2) = (Path.Combine(h1.DataDir, "images"), Path.Combine(h2.DataDir, "images"));
        Assert.True(File.Exists(Path.Combine(store1, $"{ids["counted"]}.qcow2")), "the import is in h1's store");
        Assert.False(Directory.Exists(store2) && Directory.EnumerateFileSystemEntries(store2).Any(), "h2's store is its own, and empty");

        // The same length, one byte changed past the header: only the hash can tell.
        await using (var file = new FileStream(Path.Combine(store1, $"{ids["tampered"]}.qcow2"), FileMode.Open, FileAccess.ReadWrite))
        {
            file.Position = file.Length - 1;
            var last = file.ReadByte();
            file.Position = file.Length - 1;
            file.WriteByte((byte)(last ^ 0xff));
        }

        var labelled = await h1.Http.PostAsJsonAsync("v1/hosts/h2/labels", new { set = new Dictionary<string, string> { ["name"] = "h2" } });
        Assert.Equal(HttpStatusCode.OK, labelled.StatusCode);
        foreach (var (vm, image) in new[] { ("far", "counted"), ("bad", "tampered") })
        {
            var created = await h1.Http.PostAsJsonAsync("v1/vms", new { name = vm, vcpus = 1, memoryMiB = 128, image, hostSelector = new[] { "name=h2" } });
            Assert.True(created.StatusCode == HttpStatusCode.Created, await created.Content.ReadAsStringAsync());
        }

        var far = await h1.WaitForVmAsync("far", "Ready", v => Console(v, "ORCHESTRATOR-GUEST-READY far"));
        Assert.Equal("h2", (string?)far["host"]);
        Assert.True(Console(far, "ORCHESTRATOR-GUEST-READY far boot=42"), $"the VM's console: {far["consoleTail"]}");

        var bad = await h1.WaitForVmAsync("bad", "Failed");
        var reason = (string?)bad["reason"] ?? "";
        Assert.Contains("image 'tampered'", reason);
        Assert.Contains("sha256", reason);
        var fetched = Path.Combine(store2, $"{ids["counted"]}.qcow2");
        Assert.Equal([fetched], Directory.EnumerateFileSystemEntries(store2).ToList());

        // Deleted from the ledger: h2's fetched copy goes too, not only the importing node's file.
        Assert.Equal(HttpStatusCode.Accepted, (await h1.Http.DeleteAsync("v1/vms/far")).StatusCode);
        await h1.Eventually(async () => (await h1.Http.GetAsync("v1/vms/far")).StatusCode == HttpStatusCode.NotFound ? true : (bool?)null,
            TimeSpan.FromSeconds(90), "the VM to be deleted");
        Assert.Equal(HttpStatusCode.NoContent, (await h1.Http.DeleteAsync("v1/images/counted")).StatusCode);
        await h2.Eventually(() => Task.FromResult(File.Exists(fetched) ? (bool?)null : true), TimeSpan.FromSeconds(30), "h2's copy to be removed");
    }

    /// <summary>A 1 MiB qcow2 whose first sector says the demo guest booted <paramref name="boots"/> times: a VM on it counts one more.</summary>
    private static async Task<string> CountedQcow2Async(TempFiles work, int boots)
    {
        var raw = work.File("counted.raw");
        var sector = new byte[1 << 20];
        Encoding.ASCII.GetBytes($"ORCHESTRATOR-BOOTS {boots}\n").CopyTo(sector, 0);
        await File.WriteAllBytesAsync(raw, sector);
        var qcow2 = work.File("counted.qcow2");
        await QemuImgAsync("convert", "-f", "raw", "-O", "qcow2", raw, qcow2);
        return qcow2;
    }

    private static async Task AssertRefusedAsync(HttpClient http, string name, string format, string path, string field, string why)
    {
        var answer = await Upload(http, $"{name}&format={format}&kernel=demo", path);
        var body = await answer.Content.ReadAsStringAsync();
        Assert.True(answer.StatusCode == HttpStatusCode.BadRequest, $"{name}: {(int)answer.StatusCode} {body}");
        var errors = JsonNode.Parse(body)!["errors"]!.AsObject();
        Assert.True(errors.ContainsKey(field), $"{name}: the refusal names '{field}': {body}");
        Assert.Contains(why, body);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync($"v1/images/{name}")).StatusCode);
    }

    /// <param name="query">the image's name, then the query string's rest.</param>
    /// <summary>
    /// As the CLI uploads: with <c>Expect: 100-continue</c>, so that an upload the node refuses before reading it gets the
    /// node's answer rather than a broken pipe while its body is still being sent.
    /// </summary>
    private static async Task<HttpResponseMessage> Upload(HttpClient http, string query, string path)
    {
        await using var file = File.OpenRead(path);
        using var request = new HttpRequestMessage(HttpMethod.Post, $"v1/images?name={query}") { Content = new StreamContent(file) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        request.Headers.ExpectContinue = true;
        return await http.SendAsync(request);
    }

    private static bool Console(JsonNode vm, string text) =>
        vm["consoleTail"]?.AsArray().Any(line => ((string?)line)?.Contains(text, StringComparison.Ordinal) == true) == true;

    private static async Task QemuImgAsync(params string[] args)
    {
        var start = new ProcessStartInfo("qemu-img") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"qemu-img {string.Join(' ', args)}: {await errors}");
    }

    /// <summary>A directory of the test's own files, removed at the end.</summary>
    private sealed class TempFiles : IDisposable
    {
        private readonly string _dir = Directory.CreateTempSubdirectory("orimg").FullName;

        public string File(string name) => Path.Combine(_dir, name);

        public void Dispose() => Directory.Delete(_dir, recursive: true);
    }
}
